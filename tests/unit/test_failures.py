"""A failed step's message names its tenant, whichever error it comes from."""

import dagster as dg
import pytest

from cliniko_assets.failures import step_failures
from splose_resources.cliniko import ClinikoAuthError
from splose_resources.splose import SploseUnavailable


def test_an_error_that_does_not_name_the_tenant_is_given_it_with_the_steps_subject():
    with pytest.raises(dg.Failure) as raised, step_failures("clinic-a", "splose/import_report"):
        raise SploseUnavailable("Splose did not answer reading import 7 for the platform (no workspace)")
    assert raised.value.description == (
        "Tenant 'clinic-a', splose/import_report: Splose did not answer reading import 7 for the platform "
        "(no workspace)"
    )
    assert raised.value.metadata["tenant"].value == "clinic-a"
    assert raised.value.metadata["error"].value == "SploseUnavailable"


def test_an_error_that_names_the_tenant_is_left_as_it_is():
    with pytest.raises(dg.Failure) as raised, step_failures("clinic-a", "cliniko extraction"):
        raise ClinikoAuthError("Cliniko rejected the API key of tenant 'clinic-a' (HTTP 401), for every resource.")
    assert raised.value.description.startswith("Cliniko rejected the API key of tenant 'clinic-a'")
