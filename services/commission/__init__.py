"""The commission service (see its issue); empty until built."""
