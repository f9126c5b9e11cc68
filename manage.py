#!/usr/bin/env python
"""Django's command-line utility for toolrec."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
    # Embedded mode runs background work (an index rebuild after an import) on timer threads
    # of this process: finish it before exiting, or the command's changes are never served.
    from toolrec_site.scheduling import background_work_finish

    background_work_finish()


if __name__ == "__main__":
    main()
