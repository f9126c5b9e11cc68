from django.apps import AppConfig
from django.conf import settings


class RecommenderConfig(AppConfig):
    name = "recommender"

    def ready(self) -> None:
        # The engine's matrix work is small per request: extra BLAS/OpenMP threads only fight
        # the other web processes for the cores (measured: p50 3 ms -> 24 ms with 2 threads).
        import faiss
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=settings.ENGINE_THREADS, user_api="blas")
        faiss.omp_set_num_threads(settings.ENGINE_THREADS)
