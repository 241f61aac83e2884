"""The integration suite's fixtures (one private real Slurm cluster per
session), for the tests of an installed package (make check-package)."""
import importlib.util
import os
import sys

_INTEG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "integration")
sys.path.insert(0, _INTEG)
_spec = importlib.util.spec_from_file_location("rs_integration_conftest",
                                               os.path.join(_INTEG, "conftest.py"))
_m = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_m)
cluster, plugstack, userdir = _m.cluster, _m.plugstack, _m.userdir
