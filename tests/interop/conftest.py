"""pytest: ``nets.py`` holds the test networks (loaded by the tests), not tests or doctests."""

collect_ignore = ["nets.py"]
