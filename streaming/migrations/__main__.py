"""``python -m streaming.migrations [namespace]``: apply the sink tables' missing migrations."""
import sys

from settings import get_settings
from streaming.migrations import migrate_all

target = sys.argv[1] if len(sys.argv) > 1 else "serving"
for store, versions in migrate_all(get_settings(), target).items():
    print(f"{store}: {'applied ' + ', '.join(versions) if versions else 'up to date'}")
