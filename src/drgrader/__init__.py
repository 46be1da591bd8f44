"""drgrader: grade diabetic retinopathy from colour fundus photographs."""

__version__ = "0.1.0"
