"""The ``chiltepin`` command-line tool."""
