"""The CLI shell's subcommands, one module per area, in the order of the data's path."""
