"""Airflow example: DAGs that wait in waitgate (``dags/``); see ``README.md``."""
