"""fer-train trains a section's runs into the store; a second call reads them back."""
import pytest
import yaml

from fer_lib.runs import RunStore
from fer_lib.commands.train import main as cli_main


def main(argv):
    """fer-train exits with its status; 0 is success."""
    with pytest.raises(SystemExit) as done:
        cli_main(argv)
    assert done.value.code == 0


def test_fer_train_fills_the_store(tmp_path, capsys):
    p = {"data": {"n_train": 96, "n_val": 32, "n_test": 32, "seed": 1},
         "train": {"epochs": 1, "batch_size": 16, "img_size": 32, "num_workers": 0},
         "teachers": {"tiny": {"model": {"arch": "test_resnet"}}, "other": {"model": {"arch": "test_convnext"}}}}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(p))
    main(["--params", str(f), "--only", "tiny"])
    assert "tiny:" in capsys.readouterr().out
    assert len(RunStore().runs("teacher")) == 1
    main(["--params", str(f), "--only", "tiny"])
    assert "from store" in capsys.readouterr().out


def test_fer_train_distillation_section_trains_teachers_then_students(tmp_path, capsys):
    p = {"data": {"source": "synthetic_cifar", "n_train": 84, "n_val": 28, "n_test": 28, "size": 32, "seed": 1},
         "teacher_train": {"epochs": 1, "batch_size": 16, "img_size": 32, "num_workers": 0},
         "teachers": {"t": {"model": {"arch": "test_resnet", "head": "linear", "in_chans": 3}}},
         "student": {"arch": "test_efficientnet", "head": "linear", "in_chans": 3},
         "train": {"epochs": 1, "batch_size": 16, "img_size": 32, "num_workers": 0},
         "arms": {"kd": {"teachers": ["t"], "distill": {"method": "kd"}}, "scratch": {"distill": {"method": "none"}}}}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(p))
    main(["--section", "04_kd_cifar", "--params", str(f), "--only", "kd"])
    assert "kd:" in capsys.readouterr().out
    assert len(RunStore().runs("teacher")) == 1 and len(RunStore().runs("student")) == 1
