from streams.cli import main
from streams.shutdown import exit_process

raise SystemExit(exit_process(main()))
