from streams.cli.main import main
from streams.runtime.shutdown import exit_process

raise SystemExit(exit_process(main()))
