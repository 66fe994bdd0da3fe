import os
import sys
from pathlib import Path

import pytest
import torch

# Triton decides at import whether it compiles for a GPU or interprets on the CPU; without a GPU the
# kernel tests run under its interpreter, so say so before anything imports Triton (torch does not).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# tests import their own helpers (notebook_tools, check_tools) by name
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: threads cost more than they save (and CI runs test files in parallel)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
