"""A lean offscreen renderer for a model's cameras: no shadows, reflections, MSAA or sites.

``mujoco.Renderer`` renders with shadows and reflections by default, creates one GL context
per renderer (~50 MB each with software EGL) and gives no handle for re-uploading textures.
Here every renderer of a process shares one GL context and owns its ``MjrContext``, so a
worker holding several task models pays for the context once, and the randomizer can upload
new texture pixels in place. Goal-marker sites are hidden (they would give the goal away),
as is the geom group of the backdrop wall unless asked for.
"""

from __future__ import annotations

import atexit
import os

import mujoco
import numpy as np

from lamp_data.envs.base import MAX_IMAGE_SIZE

from lamp_data.envs.randomization import HIDDEN_GROUP

_SHARED_CONTEXT: dict[int, mujoco.GLContext] = {}


def _shared_gl_context() -> mujoco.GLContext:
    """This process's GL context (a forked child makes its own), made current."""
    pid = os.getpid()
    context = _SHARED_CONTEXT.get(pid)
    if context is None:
        context = _SHARED_CONTEXT[pid] = mujoco.GLContext(MAX_IMAGE_SIZE, MAX_IMAGE_SIZE)
        atexit.register(context.free)
    context.make_current()
    return context


class SceneRenderer:
    """Renders ``[size, size, 3]`` uint8 frames of one model from its cameras.

    One renderer serves every camera of a model (the render context, with its uploaded
    textures, and the scene buffers are shared); :meth:`render` picks the camera.

    Args:
        model: The compiled model (its ``vis.global_.offwidth/offheight`` must fit ``size``).
        size: Square image side in pixels.
        camera_id: The model camera :meth:`render` uses unless told another.
    """

    def __init__(self, model: mujoco.MjModel, size: int, camera_id: int):
        self.model = model
        self.size = size
        self._gl = _shared_gl_context()
        self.context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.context)
        self._scene = mujoco.MjvScene(model, maxgeom=2000)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = True
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = camera_id
        self.camera_id = camera_id
        self.option = mujoco.MjvOption()
        self.option.sitegroup[:] = 0
        self.option.geomgroup[HIDDEN_GROUP] = 0
        self._viewport = mujoco.MjrRect(0, 0, size, size)
        self._pixels = np.empty((size, size, 3), np.uint8)

    def make_current(self) -> None:
        """Make the GL context current and bind this renderer's buffer (before texture uploads)."""
        self._gl.make_current()
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.context)

    def show_hidden_group(self, show: bool) -> None:
        """Show or hide the backdrop wall's geom group."""
        self.option.geomgroup[HIDDEN_GROUP] = int(show)

    def render(self, data: mujoco.MjData, camera_id: int | None = None) -> np.ndarray:
        """A new uint8 frame of ``data``'s current state from model camera ``camera_id``
        (default: the renderer's own)."""
        self.make_current()
        self._camera.fixedcamid = self.camera_id if camera_id is None else camera_id
        mujoco.mjv_updateScene(
            self.model, data, self.option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._viewport, self._scene, self.context)
        mujoco.mjr_readPixels(self._pixels, None, self._viewport, self.context)
        return np.flipud(self._pixels).copy()

    def close(self) -> None:
        """Free this renderer's GL resources (the shared context stays); safe to call twice."""
        if self._gl is not None:
            self._gl.make_current()
            self.context.free()
            self._gl = None
