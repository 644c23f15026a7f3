"""Scale-out on Ray (the optional `ray` extra): sharded sparse indexes built as Ray tasks and
searched through one Ray actor per shard, with the collection's BM25 statistics kept global so a
sharded search returns the same ids and scores as one index over the same passages.

    odqa index --corpus docs.jsonl --out indexes/docs --shards 4   # a local Ray cluster, or --ray-address
    odqa search --index indexes/docs "질문"                         # opens the shards as actors

Nothing here is imported by `import odqa`; Ray is imported when a sharded index is built or opened."""
