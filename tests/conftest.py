import sys
from pathlib import Path

# tests import their own helpers (notebook_tools) by name
sys.path.insert(0, str(Path(__file__).parent))
