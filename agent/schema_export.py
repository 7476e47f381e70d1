"""Print a JSON Schema (`make schema` writes both to schemas/).

python -m agent.schema_export            the agent (user) config file
python -m agent.schema_export managed    the managed (MDM) config
"""

import json
import sys

from agent.config import json_schema
from agent.settings import managed_schema

if __name__ == "__main__":
    schema = managed_schema() if sys.argv[1:] == ["managed"] else json_schema()
    print(json.dumps(schema, indent=2, sort_keys=True))
