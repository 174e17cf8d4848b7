import joblib
import pytest

from core.errors import InputError
from models.training import load_model


@pytest.mark.parametrize(
    "content",
    [bytes((i * 37 + 11) % 256 for i in range(512)), b"just some text\nnot a model\n", b""],
    ids=["random-bytes", "text", "empty"],
)
def test_a_file_that_is_not_a_model_is_an_input_error(tmp_path, content):
    path = tmp_path / "model.joblib"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a Raqib model file") as caught:
        load_model(path)
    assert caught.value.source == str(path)


def test_a_missing_model_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a Raqib model file: no such file"):
        load_model(tmp_path / "absent.joblib")


def test_a_joblib_file_of_something_else_is_an_input_error(tmp_path):
    path = tmp_path / "other.joblib"
    joblib.dump({"not": "a model"}, path)
    with pytest.raises(InputError, match="not a Raqib"):
        load_model(path)
