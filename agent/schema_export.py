"""Print the JSON Schema of the agent config file (`make schema` writes it to schemas/)."""

import json

from agent.config import json_schema

if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
