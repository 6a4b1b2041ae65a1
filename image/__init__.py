"""The operator's OCI image, built without a container engine (`make image`): see image/build.py."""
