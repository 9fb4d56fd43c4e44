"""kappaflow.protocol: where the runs of the protocol live."""

from kappaflow.protocol import run_dir, stage1_dir, stage1_run_dir


def test_stage1_is_step_ii_on_aflow_when_it_trains_as_long() -> None:
    assert stage1_run_dir(3, epochs=300, stage1_epochs=300) == run_dir("II", "AFLOW", 3)
    assert run_dir("II", "AFLOW", 3) == "results/models/stepII/AFLOW/run3"


def test_stage1_of_another_length_is_a_run_of_its_own() -> None:
    assert stage1_run_dir(3, epochs=300, stage1_epochs=20) == stage1_dir(3)
    assert stage1_dir(3) == "results/models/stage1/aflow/run3"
