import sys

from devserver.dovecot import main

sys.exit(main())
