"""The Kubernetes side of the shell, and the only place that talks to the API server.

- `rest.py`: JSON over the Kubernetes client's pool and credentials (no generated API classes);
- `store.py`: one store of what the watches and our own writes told us, with the one reading rule;
- `gateway.py`: typed reads (answered from the store when that is as good as a GET) and guarded writes;
- `watches.py`: client-go-style reflectors that feed the store (Secrets and ConfigMaps metadata only,
  StorageClusters whole).

The reconcile steps see none of this: they get a `GatewayPort`.
"""
