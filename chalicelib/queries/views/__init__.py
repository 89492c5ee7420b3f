"""The `*_latest` dimension views of contract §4: one Athena-dialect `.sql` file each."""
