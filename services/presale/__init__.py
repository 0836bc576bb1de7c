"""The presale service (see its issue); empty until built."""
