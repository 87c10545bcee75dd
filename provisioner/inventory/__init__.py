"""The inventory: one Ansible YAML file -> a validated, typed Cluster (see docs/inventory.md).

cluster = load_inventory(Path("edge.yml"))        # raises InventoryError listing every problem
extra_vars = to_ansible_vars(cluster)             # what the CLI adds to each playbook run
schema = json_schema()                            # for editors and `provision schema`
"""

from provisioner.inventory.loader import load_inventory, to_ansible_vars
from provisioner.inventory.model import Cluster, Hardware, Host, K3sSettings, cluster_to_dict, host_to_dict
from provisioner.inventory.schema import json_schema

__all__ = [
    "Cluster",
    "Hardware",
    "Host",
    "K3sSettings",
    "cluster_to_dict",
    "host_to_dict",
    "json_schema",
    "load_inventory",
    "to_ansible_vars",
]
