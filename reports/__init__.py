"""Reports for administrators: ratio, coverage, usage."""
