/**
 * Balances: per account and asset, a free and a locked amount in 10^-8 units. Every operation
 * moves value between free and locked or between accounts; only `open` creates value (an account's
 * starting balances, counted in `minted`) and only `withdraw` destroys it (counted in
 * `withdrawn`), so for every asset the sum of free + locked over all accounts always equals
 * minted - withdrawn. The engine checks balances before it moves them; an operation that would
 * still go negative is a bug and throws LedgerError, which the HTTP layer answers as -1000.
 */
import { ASSETS, perAsset, type Asset } from "./markets.js";

export interface Balance {
  free: bigint;
  locked: bigint;
}

export interface AccountRecord {
  readonly account: string;
  /** Binance-style numeric user id, unique per account. */
  readonly uid: number;
  readonly createdAt: number;
  updateTime: number;
  readonly balances: Record<Asset, Balance>;
}

export class LedgerError extends Error {
  override name = "LedgerError";
}

function zeroTotals(): Record<Asset, bigint> {
  return perAsset(() => 0n);
}

export class Ledger {
  private readonly accounts = new Map<string, AccountRecord>();
  private readonly mintedTotals = zeroTotals();
  private readonly withdrawnTotals = zeroTotals();
  private nextUid = 100_000_001;

  /** Returns the account, creating it with `initial` balances if it has not been seen before. */
  open(account: string, initial: Readonly<Record<Asset, bigint>>, now: number): AccountRecord {
    const existing = this.accounts.get(account);
    if (existing !== undefined) return existing;
    const balances = perAsset((asset): Balance => ({ free: initial[asset], locked: 0n }));
    for (const asset of ASSETS) this.mintedTotals[asset] += initial[asset];
    const record: AccountRecord = { account, uid: this.nextUid++, createdAt: now, updateTime: now, balances };
    this.accounts.set(account, record);
    return record;
  }

  get(account: string): AccountRecord | undefined {
    return this.accounts.get(account);
  }

  /** The account's balance of `asset`; throws if the account was never opened. */
  balance(account: string, asset: Asset): Balance {
    const record = this.accounts.get(account);
    if (record === undefined) throw new LedgerError(`account ${JSON.stringify(account)} is not open`);
    return record.balances[asset];
  }

  free(account: string, asset: Asset): bigint {
    return this.balance(account, asset).free;
  }

  /** Adds to free. */
  credit(account: string, asset: Asset, amount: bigint, now: number): void {
    this.check(amount);
    this.balance(account, asset).free += amount;
    this.touch(account, now);
  }

  /** Takes from free. */
  debit(account: string, asset: Asset, amount: bigint, now: number): void {
    this.check(amount);
    const b = this.balance(account, asset);
    if (b.free < amount) throw new LedgerError(`debit of ${asset} beyond free balance`);
    b.free -= amount;
    this.touch(account, now);
  }

  /** Moves from free to locked. */
  lock(account: string, asset: Asset, amount: bigint, now: number): void {
    this.check(amount);
    const b = this.balance(account, asset);
    if (b.free < amount) throw new LedgerError(`lock of ${asset} beyond free balance`);
    b.free -= amount;
    b.locked += amount;
    this.touch(account, now);
  }

  /** Moves from locked back to free. */
  unlock(account: string, asset: Asset, amount: bigint, now: number): void {
    this.check(amount);
    const b = this.balance(account, asset);
    if (b.locked < amount) throw new LedgerError(`unlock of ${asset} beyond locked balance`);
    b.locked -= amount;
    b.free += amount;
    this.touch(account, now);
  }

  /** Takes from locked (a resting order's funds, paid to its counterparty). */
  spendLocked(account: string, asset: Asset, amount: bigint, now: number): void {
    this.check(amount);
    const b = this.balance(account, asset);
    if (b.locked < amount) throw new LedgerError(`spend of ${asset} beyond locked balance`);
    b.locked -= amount;
    this.touch(account, now);
  }

  /** Takes from free and out of the exchange. */
  withdraw(account: string, asset: Asset, amount: bigint, now: number): void {
    this.debit(account, asset, amount, now);
    this.withdrawnTotals[asset] += amount;
  }

  /** Every open account, in the order they were opened. */
  list(): AccountRecord[] {
    return [...this.accounts.values()];
  }

  /** free + locked over all accounts, per asset. */
  totals(): Record<Asset, bigint> {
    const out = zeroTotals();
    for (const record of this.accounts.values()) {
      for (const asset of ASSETS) out[asset] += record.balances[asset].free + record.balances[asset].locked;
    }
    return out;
  }

  /** Everything ever given to accounts as starting balances. */
  minted(): Record<Asset, bigint> {
    return { ...this.mintedTotals };
  }

  /** Everything ever withdrawn. */
  withdrawn(): Record<Asset, bigint> {
    return { ...this.withdrawnTotals };
  }

  private check(amount: bigint): void {
    if (amount < 0n) throw new LedgerError("negative amount");
  }

  private touch(account: string, now: number): void {
    const record = this.accounts.get(account);
    if (record !== undefined) record.updateTime = now;
  }
}
