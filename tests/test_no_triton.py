"""Without triton (macOS, Windows) the package imports, runs the torch paths, and says so when triton is asked for."""
import subprocess, sys, textwrap

def test_package_works_without_triton():
    code = textwrap.dedent('''
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "triton" or name.startswith("triton."): raise ImportError("no triton here")
        sys.meta_path.insert(0, Block())
        import torch, sparse_transformer_edu as ste
        from sparse_transformer_edu.patterns import token_mask
        from sparse_transformer_edu.plans import attention_reference
        assert not ste.HAS_TRITON
        q, k, v = torch.randn(3, 1, 2, 64, 32).unbind(0)
        out = ste.sparse_attention(q, k, v, "fixed", stride=16, c=4)
        ref = attention_reference(q, k, v, token_mask("fixed", 64, stride=16, c=4))[0]
        assert (out - ref).abs().max() < 1e-5
        try:
            ste.sparse_attention(q, k, v, "fixed", stride=16, c=4, backend="triton")
        except RuntimeError as e:
            assert "triton package, which is not installed" in str(e), e
        else:
            raise SystemExit("no error for backend='triton' without triton")
        print("ok")
    ''')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr
