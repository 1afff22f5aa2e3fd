"""The example's DAG folder (``AIRFLOW__CORE__DAGS_FOLDER``)."""
