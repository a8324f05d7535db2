import lipdp


def test_version_is_declared():
  assert lipdp.__version__.count(".") == 2
