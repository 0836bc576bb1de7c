"""`python -m services.notify`: the same as `flexchain serve notify`."""

from services.notify.app import main

if __name__ == "__main__":
    main()
