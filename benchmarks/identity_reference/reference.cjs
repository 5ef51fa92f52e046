// Reference descriptors from face-api.js itself (TF.js, pure-JavaScript CPU backend), to check
// fxaug's PyTorch port of FaceRecognitionNet. Run by benchmarks/identity_accuracy.py --reference:
//
//   npm install --ignore-scripts @vladmandic/face-api@1.7.15     (pulls @tensorflow/tfjs 4.22)
//   NODE_PATH=<that>/node_modules node reference.cjs MODEL_DIR IN.bin OUT.bin
//
// IN.bin: uint32 count, then per image uint32 height, uint32 width and height*width*3 RGB bytes.
// OUT.bin: count x 128 float32 descriptors, computed from tensor inputs as face-api.js prepares
// them (padToSquare centred, tf.image.resizeBilinear to 150, minus the channel means, / 256).
const fs = require('fs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

(async () => {
  const [modelDir, inPath, outPath] = process.argv.slice(2);
  await faceapi.tf.setBackend('cpu');
  await faceapi.tf.ready();
  await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);
  const buf = fs.readFileSync(inPath);
  const count = buf.readUInt32LE(0);
  let offset = 4;
  const out = new Float32Array(count * 128);
  for (let i = 0; i < count; i++) {
    const h = buf.readUInt32LE(offset); const w = buf.readUInt32LE(offset + 4); offset += 8;
    const pixels = new Int32Array(buf.subarray(offset, offset + h * w * 3)); offset += h * w * 3;
    const image = faceapi.tf.tensor3d(pixels, [h, w, 3], 'int32');
    const descriptor = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(image);
    image.dispose();
    out.set(descriptor, i * 128);
  }
  fs.writeFileSync(outPath, Buffer.from(out.buffer));
  console.log(`${count} descriptors, backend ${faceapi.tf.getBackend()}, tfjs ${faceapi.tf.version_core}`);
})();
