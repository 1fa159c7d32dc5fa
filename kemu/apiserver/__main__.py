import sys

from kemu.apiserver.server import main

sys.exit(main())
