"""`python -m bot.cli`: the `lastmile` command."""

from bot.cli import main

main()
