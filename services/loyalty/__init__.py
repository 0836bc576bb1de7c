"""The loyalty service (see its issue); empty until built."""
