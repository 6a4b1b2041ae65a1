"""The Kubernetes side of the shell, and the only place that talks to the API server.

- `rest.py`: JSON with the Kubernetes client's credentials (no generated API classes), over
  `transport.py` (kept-alive HTTP/1.1, requests read whole) or, for watch streams, the client's urllib3 pool;
- `store.py`: one store of what the watches and our own writes told us, with the one reading rule;
- `gateway.py`: typed reads (answered from the store when that is as good as a GET) and guarded writes;
- `watches.py`: client-go-style reflectors that feed the store (PxSecurities, StorageClusters, StorageNodes
  and PersistentVolumes whole; Secrets, ConfigMaps and Namespaces metadata only).

The reconcile steps see none of this: they get a `GatewayPort`.
"""
