"""px-security-operator: declarative PX-Security bootstrap for Portworx clusters."""

__version__ = "0.1.0"
