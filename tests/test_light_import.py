import subprocess
import sys


def test_import_odqa_loads_no_heavy_dependency():
    code = (
        "import sys, odqa, odqa.cli, odqa.retrieval, odqa.analysis, odqa.metrics, odqa.reader, "
        "odqa.retrieval.sparse, odqa.retrieval.hybrid, odqa.training.reader, odqa.training.mlm, odqa.pipeline, "
        "odqa.e2e, odqa.serve.app, odqa.distributed.sharded, odqa.distributed.sparse_shards;"
        "heavy = {'torch', 'transformers', 'numba', 'mecab', 'kiwipiepy', 'scipy', 'bm25s', 'accelerate', "
        "'tokenizers', 'fastapi', 'uvicorn', 'ray'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
