"""The HTTP app for reviewers and administrators."""
