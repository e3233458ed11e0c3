import sys

from moshi_backend.main import main

if __name__ == "__main__":
    sys.exit(main())
