"""streamdet: object detection in event-camera and spike-camera streams with a converted spiking RetinaNet."""

__version__ = "0.1.0"

CLASS_NAMES: tuple[str, ...] = ("boat", "buoy", "car", "pedestrian")
"""Class names in label order; label ``i`` is COCO category id ``i + 1``."""
