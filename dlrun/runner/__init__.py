"""The ``dlrun`` command: Hydra entry point, tasks (training loops), console and MLflow reporting."""
