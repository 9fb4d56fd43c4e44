"""Every rule that runs something has a log and a benchmark that mirror each other (logs/<rule>/...)."""

from __future__ import annotations


def test_every_rule_has_a_log_and_a_benchmark(workflow_rules) -> None:
    runnable = [rule for rule in workflow_rules.values() if rule.action is not None]
    assert len(runnable) > 15
    missing = sorted(rule.name for rule in runnable if not rule.log or not rule.benchmark)
    assert not missing, f"rules without a log or a benchmark: {missing}"
    for rule in runnable:
        assert rule.log[0].startswith(f"logs/{rule.name}/"), rule.log
        assert rule.benchmark.startswith(f"logs/benchmarks/{rule.name}/"), rule.benchmark
