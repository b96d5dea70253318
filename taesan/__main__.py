"""`python -m taesan` -> the command line."""
from taesan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
