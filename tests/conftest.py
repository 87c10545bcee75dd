pytest_plugins = ["tests.lab.fixtures", "tests.ordering"]
