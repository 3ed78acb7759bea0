import sys

from optio.cli.commands import main

sys.exit(main())
