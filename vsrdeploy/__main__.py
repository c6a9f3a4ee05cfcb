"""``python -m vsrdeploy``: the same command line as ``vsrdeploy``."""
from .cli import main

if __name__ == "__main__":
    main(prog_name="vsrdeploy")
