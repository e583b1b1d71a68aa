"""The MLflow registry and the BentoML store: versions, aliases, promotion, and the one export to BentoML."""
