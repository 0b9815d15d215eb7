import sys

from serve_app.bulk.driver import main

sys.exit(main())
