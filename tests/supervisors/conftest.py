"""The supervisors test suite loads the package's pytest support: the ``fault_injector``
fixture and the report hook that prints its seed and injections when a test fails."""

from supervisors.testing import fault_injector, pytest_runtest_makereport

__all__ = ["fault_injector", "pytest_runtest_makereport"]
