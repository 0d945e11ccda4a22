/**
 * Binance's documentation examples, copied exactly: the signing vectors of the REST and WebSocket
 * API tests (test/compat/binance.test.ts, test/dialects/binance-message.test.ts).
 */
// REST: binance/binance-spot-api-docs, rest-api.md, "SIGNED Endpoint Examples for POST
// /api/v3/order" (HMAC Keys: the ASCII and the non-ASCII example; the 2021 edition's "Example 3:
// Mixed query string and request body"). WebSocket API: web-socket-api.md, "SIGNED request
// example (HMAC)" (the newOrderRespType=ACK edition, and the current ASCII / non-ASCII pair).
export const DOC_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
export const DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
export const DOC_TIMESTAMP = 1499827319559;
export const REST_PAYLOAD = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
export const REST_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
export const REST_PAYLOAD_NON_ASCII =
  "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
export const REST_SIGNATURE_NON_ASCII = "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3";
export const MIXED_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC";
export const MIXED_BODY = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
export const MIXED_SIGNATURE = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77";

export const WS_PARAMS = {
  symbol: "BTCUSDT",
  side: "SELL",
  type: "LIMIT",
  timeInForce: "GTC",
  quantity: "0.01000000",
  price: "52000.00",
  newOrderRespType: "ACK",
  recvWindow: 100,
  timestamp: 1645423376532,
  apiKey: DOC_API_KEY,
  signature: "------ FILL ME ------",
};
export const WS_PAYLOAD =
  "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT";
export const WS_SIGNATURE = "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a";
export const WS_PAYLOAD_ASCII =
  "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT";
export const WS_SIGNATURE_ASCII = "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24";
export const WS_PAYLOAD_NON_ASCII =
  "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&price=0.10000000&quantity=1.00000000&recvWindow=5000&side=BUY&symbol=１２３４５６&timeInForce=GTC&timestamp=1645423376532&type=LIMIT";
export const WS_SIGNATURE_NON_ASCII = "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd";
