"""The mission's table as declared: every asset, check, reconciliation line and the load order follow from it."""

import dagster as dg

from cliniko_assets.attention import EXPECTED, PROBLEM, SKIP_REASONS
from cliniko_assets.catalog import BY_NAME as RESOURCES
from cliniko_assets.definitions import defs
from cliniko_assets.extract import REFERENCES
from cliniko_assets.rows import COMMON_SKIPS, LOAD_ORDER, ROWS, TABLE, after_mapping


def test_each_row_is_declared_once_and_the_reconciliation_prints_them_in_the_tables_order():
    assert [row.name for row in TABLE if row.part_of is None] == list(ROWS) and len(set(ROWS)) == 14
    assert {row.name: row.part_of for row in TABLE if row.part_of} == {"referenced_clients": "clients"}
    assert ROWS["clients"] == "Patients -> Clients" and ROWS["attendees"] == "Attendees -> Group appointment clients"
    assert all(resource in (*RESOURCES, REFERENCES) for row in TABLE for resource in row.inputs)


def test_only_the_rows_without_a_mapped_reference_use_the_mapping_as_checked():
    before = {row.name for row in LOAD_ORDER if not after_mapping(row)}
    assert before == {"contacts", "clients", "referenced_clients", "files"}


def test_the_load_order_puts_every_row_after_the_rows_it_needs():
    order = [row.name for row in LOAD_ORDER]
    assert order[:3] == ["provider_numbers", "contacts", "clients"]
    for position, row in enumerate(LOAD_ORDER):
        assert all(need not in order[position:] for need in row.needs), row.name


def test_each_rows_asset_depends_on_its_inputs_and_needs_and_has_its_checks():
    graph = defs.resolve_asset_graph()
    checks = {(spec.asset_key, spec.name) for assets in defs.assets for spec in getattr(assets, "check_specs", [])}
    for row in TABLE:
        if row.reported_with is not None:
            assert dg.AssetKey(["splose", row.name]) not in graph.get_all_asset_keys()
            continue
        key = dg.AssetKey(["splose", row.name])
        assert set(graph.get(key).parent_keys) == set(row.deps()), row.name
        assert {(key, "reconciled"), *((key, check.name) for check in row.checks)} <= checks


def test_every_classified_skip_reason_belongs_to_a_rows_declaration():
    declared = {reason for row in TABLE for reason in row.skips}
    assert set(SKIP_REASONS) - set(COMMON_SKIPS) <= declared
    assert SKIP_REASONS["client not imported"] == EXPECTED and SKIP_REASONS["no booking link"] == PROBLEM
