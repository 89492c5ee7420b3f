"""The named queries of contract §6: one Athena-dialect `.sql` file each, with its parameters
declared in its header."""
