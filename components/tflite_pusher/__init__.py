"""TFLitePusher: publishes a blessed model as a versioned on-device bundle."""
