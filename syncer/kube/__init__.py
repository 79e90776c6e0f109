"""The Kubernetes boundary: `api.ClusterAPI` (typed records in and out), its error tree, the JSON
codec, the write rate limit, the real client (`client`, the only importer of `kubernetes`) and an
in-memory fake (`fake`) that the contract suite holds to the real apiserver's behaviour."""
